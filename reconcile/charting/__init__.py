"""Charts (internal): rendering and releases of jinja2-templated packages."""
