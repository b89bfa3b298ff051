"""kaito-gen: compile Kaito Workspaces into Kubernetes + Karpenter manifest bundles.

The public API is the pipeline (:func:`compile_bundles`) and the stage functions it
chains; everything else is internal. Importing this package does no work.
"""

__version__ = "0.1.0"
