"""Domain logic: versioned writes, authorization rules, queries. No GraphQL here."""
