"""Helpers for users and scripts that need a profile-level set-up (computers, codes)."""
