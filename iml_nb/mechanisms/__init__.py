"""Why IML happens, measured on trained models: linear probes for the tag (probe), definition-vs-question gradient alignment
(gradalign), and where alias embedding rows point (alignment)."""
