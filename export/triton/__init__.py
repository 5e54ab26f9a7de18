"""Triton Inference Server model repositories (``fornet export --triton REPO``) and their schema check."""
