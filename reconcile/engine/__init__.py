"""The operator runtime (internal): work queues, controllers, leader election and the plugin SDK behind `reconcile`."""
