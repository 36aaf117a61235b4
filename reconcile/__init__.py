"""reconcile: a Kubernetes-style control plane and operator framework.

This module is the plugin SDK's public surface; it stays small on purpose.
"""

__version__ = "0.1.0"
