"""Small mechanisms every room shares, each defined once: atomic file writes and sha256
checksums (files), one run per folder (lock: an flocked lock file), what the CPU offers and
the machine-wide claims that give engines cores of their own (cpu), progress a person can
see (progress), cache-friendly transposes of large weights (arrays), worker processes
started and stopped one way (children), and Protocol Buffers' wire format read without a
schema (protowire: Caffe files).

Imports nothing else from the package but `resnet.errors`.
"""
