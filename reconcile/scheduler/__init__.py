"""The scheduler (internal): filters, scores and binding."""
