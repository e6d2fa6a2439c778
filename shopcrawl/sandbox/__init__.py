"""A local emulator of Taobao TOP ``router/rest`` for tests, demos and benchmarks.

Modules: ``synth`` (deterministic synthetic items), ``shop`` (a shop, listing indexes, mutations),
``shops`` (the default and ``--shops`` shops, and which one a call names), ``checks`` (request
validation and error codes), ``render`` (JSON/XML envelopes), ``faults`` (QPS bans and fault
injection), ``stats`` (counters and call log), ``app`` (the TOP handler and the endpoint list),
``control`` (the control endpoints), ``aop`` / ``gateway`` / ``oauth`` (the other APIs), ``server``
(the command line). Each module's docstring lists the choices it makes where
the protocol reference marks the real behaviour [unconfirmed].
"""

from shopcrawl.sandbox.app import SANDBOX_KEY, Sandbox, create_app
from shopcrawl.sandbox.config import SandboxConfig
from shopcrawl.sandbox.shop import Shop

__all__ = ["SANDBOX_KEY", "Sandbox", "SandboxConfig", "Shop", "create_app"]
