"""Reading the network spec back to people: the layer table with parameter counts, and the
Graphviz diagram (full or compact, with highlighted layers).

Imports `resnet.models`, `resnet.common` (atomic writes) and `resnet.errors`; the graphviz
package only when drawing.
"""
