"""One photo in, a rigged body and a clothed surface out: ``reconstruct(image, options) -> Reconstruction``.

Stages (``munet.pipeline.stages``; each timed in the report, ``progress(stage, fraction)`` called as each
starts, ``cancel`` checked between them), each a function returning a typed record:

1. ``detect`` -> ``Detected``: decode the photo (``munet.detect.load_image``), run MediaPipe Pose, take
   the fit targets.
2. ``initialise`` -> ``Initialised``: where the fit starts: MuNet's prediction (method ``"network"``,
   ``munet.fitting.network_init``) or MediaPipe's world keypoints with leg-depth alternatives (method
   ``"fitting"``, ``munet.fitting.keypoint_init``).
3. ``fit`` -> ``Fitted``: all candidates fitted to the 2D keypoints, the floor, the world-keypoint
   directions and the pose priors (``munet.fitting.body_fit``); the best is kept. When the feet are seen
   on the floor, the same candidates are also fitted without the floor term, in the same batch, so the
   report can say whether the ground plane decided the legs' depth.
4. ``refine`` -> ``Refined``: the kept body against keypoints + silhouette, shape free
   (``refine_iterations``), and the camera.
5. ``clothing`` -> ``ClothingResult``: normal offsets within per-region caps (``munet.fitting.clothing``).
6. ``rig`` -> ``Rig``: the pose and skin on the requested skeleton (smpl24 or Anny's full one).
7. ``texture`` -> ``Textured``: the photo projected onto the visible front (``munet.texture``).
8. ``metrics`` -> ``AlignmentReport``, ``DepthReport``: silhouette IoU (clothed and body), keypoint
   error, what each depth cue says.

``munet.pipeline.assemble`` builds the ``Reconstruction`` and its typed report
(``munet.report.ReconstructionReport``) from the records, in one place. ``Pipeline``
(``munet.pipeline.runner``) loads the heavy objects once and runs the stages.
"""

from munet.pipeline.runner import STAGES, Pipeline, ProgressFn, default_pipeline, reconstruct
from munet.pipeline.stages import FIT_ITERATIONS

__all__ = ["FIT_ITERATIONS", "STAGES", "Pipeline", "ProgressFn", "default_pipeline", "reconstruct"]
