"""Small mechanisms every room shares, each defined once: atomic file writes and sha256
checksums (files), what the CPU offers (cpu), progress a person can see (progress).

Imports nothing else from the package but `resnet.errors`.
"""
