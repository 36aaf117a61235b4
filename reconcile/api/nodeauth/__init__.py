"""Upstream's node authorization: the Node authorizer (`graph`, `authorizer`) and the
NodeRestriction admission plugin (`restriction`), both keyed on the node identity (`identity`)."""
