"""Role-based access control (internal): rule matching (`rules`), the index of roles and bindings
read from the watch caches (`index`), the authorizer (`authorizer`), escalation prevention
(`escalation`) and the default policy reconciled at start (`policy`, `bootstrap`)."""
