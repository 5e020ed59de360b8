"""Many accounts, many processes, many hosts: an account pool with leases.

``ChatHailuo(accounts=[...])`` builds an :class:`AccountPool`; ``pool_url="redis://..."``
(or ``HAILUO_POOL_URL``) shares its leases and cool-downs through Redis (the
``langchain-hailuo[redis]`` extra, imported only then).
"""

from langchain_hailuo._config import (
    ENV_ACCOUNTS_DIR,
    ENV_POOL_URL,
    ENV_TOKENS,
    account_file,
    default_accounts_dir,
    pool_specs_from_env,
)
from langchain_hailuo.pool.backend import DEFAULT_LEASE_TTL, AccountStatus, InProcessBackend
from langchain_hailuo.pool.health import Cooldown, HealthSettings
from langchain_hailuo.pool.scheduler import AccountPool, Lease
from langchain_hailuo.pool.sources import AccountSpec, PoolAccount, load_accounts, save_account

__all__ = [
    "DEFAULT_LEASE_TTL",
    "ENV_ACCOUNTS_DIR",
    "ENV_POOL_URL",
    "ENV_TOKENS",
    "AccountPool",
    "AccountSpec",
    "AccountStatus",
    "Cooldown",
    "HealthSettings",
    "InProcessBackend",
    "Lease",
    "PoolAccount",
    "account_file",
    "default_accounts_dir",
    "load_accounts",
    "pool_specs_from_env",
    "save_account",
]
