"""The paper's main experiment: people (synthetic, CVDB or WordNet) with aliases, Define-dot / Define-bar definitions and QA
(people, wordnet, define), its stages with cached Stage-0 and Stage-1 checkpoints (experiment), the data exported as datasets
(export), a pretrained model's knowledge of the people (knowledge), and the pre-registered robustness design (robustness)."""
