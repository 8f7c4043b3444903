# Run from the repository root: .venv/bin/python outputs/diagnostics/11_pretrained/two-hop/command.py 0 outputs/diagnostics/11_pretrained/two-hop/two_hop_seed0.csv
# (commit 3daa641 + knowledge.two_hop_check; the 11_pretrained notebook now runs the same check in its knowledge-check section).
"""Diagnostic: SmolLM2-135M's two-hop from a definition in context, on explore-3/4's world (400 WordNet people, people_seed 0),
the Stage-2 aliases of Stage-1 seed 0's draw, after the knowledge check's format warm-up (100 other people, 1 epoch, lr 1e-4)."""
import sys, time
import pandas as pd
from iml_nb.people_qa import config, knowledge, people, stage0
from iml_nb.people_qa.define import make_define_data
import yaml
params = yaml.safe_load(open("params/11_pretrained_wide.yaml"))
import ast
from iml_nb.runs.runner import declared_parameters
d = {k: ast.literal_eval(v["default"]) for k, v in declared_parameters("notebooks/11_pretrained.ipynb").items()}
d.update(params)
cfg = config.build_config(**{k: v for k, v in d.items() if k not in ("warmup_people", "warmup_epochs")})
pop = people.load_people(cfg); others = people.other_people(cfg, 100)
t = time.time()
net, tok = stage0.base_model(cfg, pop)
known = knowledge.knowledge_check(net, tok, pop, others, 1, lr=cfg.train.lr, batch_size=64)
print(known.round(3).to_string(), f"\n[{time.time()-t:.0f} s]", flush=True)
draw = make_define_data(pop, cfg.data, int(sys.argv[1]) if len(sys.argv) > 1 else 0, 0)
table = knowledge.two_hop_check(net, tok, draw)
print(table.round(3).to_string())
print(table.groupby("subset")[list(knowledge.TWO_HOP_WAYS)].mean().round(3).to_string(), f"\n[{time.time()-t:.0f} s]")
table.to_csv(sys.argv[2] if len(sys.argv) > 2 else "/tmp/two_hop.csv", index=False)
