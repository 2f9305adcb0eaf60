"""OKS similarity, greedy/Hungarian matching and track id bookkeeping."""
