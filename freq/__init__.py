"""Frequency: git-native orchestration of AI-agent and shell pipelines."""

__version__ = "0.1.0"
