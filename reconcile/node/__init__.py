"""The node agent (internal): pods as Docker containers, probes, volumes, logs and exec."""
