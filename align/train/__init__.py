"""Intermediate-task training: task registry, heads, the resumable (multi-)task trainer."""
