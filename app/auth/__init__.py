"""Authentication: public-key JWT verification and the signed-in principal."""

from app.auth.principal import Principal
from app.auth.verifier import AuthError, ConfigurationError, TokenVerifier

__all__ = ["AuthError", "ConfigurationError", "Principal", "TokenVerifier"]
