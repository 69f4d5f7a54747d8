"""Guides beyond Pyro's autoguides: normalizing flows for local and global latents."""

from ppgen.guides.flows import KINDS, AmortizedFlow, AutoFlow, FlowDistribution, FlowGuide

__all__ = ["KINDS", "AmortizedFlow", "AutoFlow", "FlowDistribution", "FlowGuide"]
