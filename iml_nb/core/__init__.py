"""What every experiment shares, in the order data flows: process set-up (env), notebook parameters checked and turned into a
config (parameters, config), seeds run in worker processes under named random streams (parallel), and the result contract every
run writes and every analysis reads: a tidy metrics frame plus a summary, in an atomic run folder (results)."""
