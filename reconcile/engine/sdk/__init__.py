"""The kopf-style plugin SDK: decorators, handler registry, and the runtime that executes handlers.

Plugin authors use it through `import reconcile as rc`; internal code imports its modules
(`from reconcile.engine.sdk import registry`).
"""
