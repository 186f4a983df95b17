"""The console's pages, one module per area."""

# Sent with a key write's result so a key list on the same page can refresh itself.
SUBKEYS_CHANGED_EVENT = "subKeysChanged"
