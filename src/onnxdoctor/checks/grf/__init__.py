"""GRF family: graph hygiene and unfused patterns (foldable constants, dead nodes, fusions)."""

from __future__ import annotations

from .cancelling_casts import CancellingCasts
from .chained_constant_arithmetic import ChainedConstantArithmetic
from .constant_foldable_subgraph import ConstantFoldableSubgraph
from .consecutive_slices import ConsecutiveSlices
from .constant_node import ConstantNode
from .dead_node import DeadNode
from .duplicate_initializer import DuplicateInitializer
from .duplicate_node import DuplicateNode
from .identity_arithmetic import IdentityArithmetic
from .known_shape_computation import KnownShapeComputation
from .noop_node import NoopNode
from .redundant_layout_chain import RedundantLayoutChain
from .unfused_gelu import UnfusedGelu
from .unfused_layer_norm import UnfusedLayerNorm
from .unfolded_batch_norm import UnfoldedBatchNorm
from .unfused_bias_add import UnfusedBiasAdd
from .unfused_rms_norm import UnfusedRmsNorm
from .unused_initializer import UnusedInitializer

RULES = (
    ConstantFoldableSubgraph,  # GRF401
    DeadNode,  # GRF402
    UnusedInitializer,  # GRF403
    DuplicateInitializer,  # GRF404
    NoopNode,  # GRF405
    CancellingCasts,  # GRF406
    DuplicateNode,  # GRF407
    IdentityArithmetic,  # GRF408
    KnownShapeComputation,  # GRF409
    ConstantNode,  # GRF410
    UnfusedLayerNorm,  # GRF411
    UnfusedGelu,  # GRF412
    UnfusedRmsNorm,  # GRF413
    UnfoldedBatchNorm,  # GRF414
    ChainedConstantArithmetic,  # GRF415
    RedundantLayoutChain,  # GRF416
    UnfusedBiasAdd,  # GRF417
    ConsecutiveSlices,  # GRF418
)
