"""Photo fitting: the body (pose, shape, placement) and the camera to keypoints, mask and depth cues,
then clothing offsets. Today the whole reconstruction; once the network lands, its test-time refinement
and the baseline it must beat.

targets     a ``munet.detect.Detection`` -> ``FitTargets`` (weights, mask outline, floor contact, unseen limbs)
initialise  pluggable starting points (MediaPipe world keypoints + leg-depth alternatives; the network later)
body_fit    the least-squares fit (``BodyFitter``, ``FitState``): keypoints, silhouette, floor, priors
lm          the batched Levenberg-Marquardt solver
pose        pose parameterisation, joint limits, hinges, priors
subset      posing a few points exactly as the full model would
depth       what each depth cue says, and which one decided
clothing    normal offsets within per-region caps
rig         the fitted smpl24 pose on Anny's full skeleton
camera      the level-roll camera above the floor
"""
