"""The language-model machinery the text experiments share: word-level vocabulary (vocab), examples as token ids with loss on the
answer (encode), from-scratch Pythia-architecture or pretrained models (model), one training stage (train), and fast teacher-forced
or generated exact match (evaluate)."""
