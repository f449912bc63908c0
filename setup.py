"""The optional native fast path of the relay (proxy/_fastpath.c).

Everything else is configured in pyproject.toml. The extension is optional: on a machine
without a C compiler the build goes on without it and the relay runs in pure Python
(proxy/fastpath.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "proxy._fastpath",
            ["proxy/_fastpath.c", "proxy/_spool.c"],
            depends=["proxy/_spool.h"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
