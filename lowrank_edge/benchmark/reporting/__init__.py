"""How results are shown: the markdown report (`markdown`), plots (`charts`), and live progress
lines (`progress`)."""
