"""Exceptions of the bundle package. The CLI maps BundleInvalid to exit 1 (verification failed)
and any other BundleError to exit 2 (a usage or configuration mistake); catch BundleInvalid first."""


class BundleError(Exception):
    """A bundle cannot be made or checked because of a mistake the user can fix (bad key file,
    bad version string, missing artifact). The message is one line naming the file or key."""


class BundleInvalid(BundleError):
    """A bundle failed verification; the message is the precise reason."""


class VersionExists(BundleError):
    """A different bundle already exists under this project, target and version."""
