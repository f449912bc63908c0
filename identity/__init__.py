"""Who is this: the one :class:`~identity.directory.Directory` the rest of jitgate asks.

A principal is a person, named by their e-mail (lower case), optionally with the agent
acting for them (:class:`~identity.directory.Principal`). Their groups are the union of
every source the directory holds: the configuration's static ``groups`` and, when ``oidc``
is configured, the groups the IdP named at their last sign-in (:mod:`identity.idp_groups`).
Web sign-in with the IdP lives in :mod:`identity.oidc` and :mod:`identity.web_sessions`.
"""

from identity.directory import Directory, GroupSource, Principal, StaticGroups

__all__ = ["Directory", "GroupSource", "Principal", "StaticGroups"]
