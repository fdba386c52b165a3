"""Photo fitting: the body (pose, shape, placement) and the camera to keypoints, mask and depth cues,
then clothing offsets. Started from the network (``network_init``) it is the network's test-time
refinement; started from MediaPipe's world keypoints (``keypoint_init``) it is the fitting-only
reconstruction, the baseline the network must beat.

targets         a ``munet.detect.Detection`` -> ``FitTargets`` (weights, mask outline, floor contact, unseen limbs)
keypoint_init   starting points from MediaPipe's world keypoints + leg-depth alternatives (``Initialiser``)
network_init    MuNet as the initialiser, and its 3D anchor for the refinement
body_fit        the least-squares fit (``BodyFitter``, ``FitState``): keypoints, silhouette, floor, priors
lm              the batched Levenberg-Marquardt solver
pose            pose parameterisation, joint limits, hinges, priors
subset          posing a few points exactly as the full model would
depth           what each depth cue says, and which one decided
clothing        normal offsets within per-region caps
rig             the fitted smpl24 pose on Anny's full skeleton
camera          the level-roll camera above the floor
"""
