"""The data plane: ``stageless proxy``. See docs/proxy.md.

The hot-path modules run compiled when a build of these very sources exists
(:mod:`stageless.proxy.native`); this must run before any of them is imported.
"""

from stageless.proxy.native import activate

activate(__path__)
