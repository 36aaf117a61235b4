"""Plain data and pure logic shared by every layer (internal): selectors, patches, names, errors, decoding."""
