"""Photo fitting: the body (pose, shape, placement) and camera to keypoints, mask and depth cues, then
clothing offsets. Used today as the whole reconstruction; later as the network's test-time refinement."""
