"""PostgreSQL type names to the type OIDs a RowDescription carries, for :mod:`masking.cell`.

:func:`type_oid` reads a name the way PostgreSQL's ``regtype`` input does for the built-in
types: ``int8`` and ``bigint``, ``varchar(20)`` and ``character varying``, ``char`` (which is
``bpchar``) and ``"char"``, ``timestamp with time zone``, arrays as ``int8[]`` or ``_int8``.
Built-in OIDs are fixed across PostgreSQL versions. Extension types, enums and composites
have OIDs of their own database; the contrib types that hold text (``citext``, ``ltree``,
``hstore``…) are named here by :data:`DATABASE_TYPE`, an OID of that kind, which is read as
any type of the database is (in text format: as text).
"""

from __future__ import annotations

import re

# typname: (oid, oid of its array type), as in pg_type (PostgreSQL 15).
_BUILTIN: dict[str, tuple[int, int]] = {
    "bool": (16, 1000), "bytea": (17, 1001), "char": (18, 1002), "name": (19, 1003),
    "int8": (20, 1016), "int2": (21, 1005), "int2vector": (22, 1006), "int4": (23, 1007),
    "regproc": (24, 1008), "text": (25, 1009), "oid": (26, 1028), "tid": (27, 1010),
    "xid": (28, 1011), "cid": (29, 1012), "oidvector": (30, 1013), "json": (114, 199),
    "xml": (142, 143), "point": (600, 1017), "lseg": (601, 1018), "path": (602, 1019),
    "box": (603, 1020), "polygon": (604, 1027), "line": (628, 629), "cidr": (650, 651),
    "float4": (700, 1021), "float8": (701, 1022), "circle": (718, 719),
    "macaddr8": (774, 775), "money": (790, 791), "macaddr": (829, 1040), "inet": (869, 1041),
    "aclitem": (1033, 1034), "bpchar": (1042, 1014), "varchar": (1043, 1015),
    "date": (1082, 1182), "time": (1083, 1183), "timestamp": (1114, 1115),
    "timestamptz": (1184, 1185), "interval": (1186, 1187), "timetz": (1266, 1270),
    "bit": (1560, 1561), "varbit": (1562, 1563), "numeric": (1700, 1231),
    "refcursor": (1790, 2201), "regprocedure": (2202, 2207), "regoper": (2203, 2208),
    "regoperator": (2204, 2209), "regclass": (2205, 2210), "regtype": (2206, 2211),
    "record": (2249, 2287), "cstring": (2275, 1263), "uuid": (2950, 2951),
    "txid_snapshot": (2970, 2949), "pg_lsn": (3220, 3221), "tsvector": (3614, 3643),
    "tsquery": (3615, 3645), "regconfig": (3734, 3735), "regdictionary": (3769, 3770),
    "jsonb": (3802, 3807), "int4range": (3904, 3905), "numrange": (3906, 3907),
    "tsrange": (3908, 3909), "tstzrange": (3910, 3911), "daterange": (3912, 3913),
    "int8range": (3926, 3927), "jsonpath": (4072, 4073), "regnamespace": (4089, 4090),
    "regrole": (4096, 4097), "regcollation": (4191, 4192), "int4multirange": (4451, 6150),
    "nummultirange": (4532, 6151), "tsmultirange": (4533, 6152),
    "tstzmultirange": (4534, 6153), "datemultirange": (4535, 6155),
    "int8multirange": (4536, 6157), "pg_snapshot": (5038, 5039), "xid8": (5069, 271),
}  # fmt: skip
ARRAY_ELEMENTS: dict[int, int] = {array: element for element, array in _BUILTIN.values()}
"""The element type OID of each built-in array type OID."""
DATABASE_TYPE = 16384  # the first OID PostgreSQL gives a database's own objects
_CONTRIB_TEXT_TYPES = frozenset({"citext", "ltree", "lquery", "ltxtquery", "hstore"})
_UNKNOWN = 705  # a literal of no declared type: PostgreSQL sends it as text
# The SQL spellings the grammar turns into the names above (unquoted "char" is bpchar).
_ALIASES = {
    "bigint": "int8", "integer": "int4", "int": "int4", "smallint": "int2",
    "boolean": "bool", "real": "float4", "float": "float8", "double precision": "float8",
    "decimal": "numeric", "dec": "numeric", "char": "bpchar", "character": "bpchar",
    "character varying": "varchar", "char varying": "varchar", "nchar": "bpchar",
    "national character": "bpchar", "national character varying": "varchar",
    "bit varying": "varbit", "time without time zone": "time",
    "time with time zone": "timetz", "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
}  # fmt: skip
_TYPMOD = re.compile(r"\s*\([\d\s,]*\)")
_ARRAY = re.compile(r"(?:\s*\[\s*\d*\s*\])+$")


def type_oid(name: str) -> int:
    """The OID of built-in type ``name`` (:data:`DATABASE_TYPE` for a contrib type that holds
    text, or an array of one); :class:`ValueError` naming it when PostgreSQL has no built-in
    type of that name. Case, type modifiers (``varchar(20)``, ``numeric(10,2)``,
    ``time(3) with time zone``) and array dimensions (``text[]``, ``int[3][3]``) are read as
    PostgreSQL reads them."""
    spelled = " ".join(_TYPMOD.sub("", name).split())
    dims = _ARRAY.search(spelled)
    base, array = _ARRAY.sub("", spelled), dims is not None
    if len(base) > 1 and base[0] == base[-1] == '"':
        base = base[1:-1]  # a quoted name is exact: no folding, no SQL spelling
    else:
        base = base.lower()
        if base.startswith("_") and base[1:] in _BUILTIN and not array:
            base, array = base[1:], True  # an array type's own name: _char is "char"[]
        else:
            base = _ALIASES.get(base, base)
    if base == "unknown" and not array:
        return _UNKNOWN
    if base in _CONTRIB_TEXT_TYPES:
        return DATABASE_TYPE
    if base not in _BUILTIN:
        raise ValueError(f"unknown type {name!r}")
    oid, array_oid = _BUILTIN[base]
    return array_oid if array else oid
