"""The set-inclusion experiment from scratch (notebook 04): variables, sets and membership questions (data), and its stages (experiment)."""
