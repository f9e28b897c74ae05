"""From `--data` to network input: what an image name is and how many crops multi-crop
takes (facts: no OpenCV), objects in storage (remote), image lists and directory trees
(lists), decoding and recipe preprocessing with OpenCV (imaging), the pool of decoding
worker processes that delivers crops in list order with memory bounded (decoding), and
the calibration images of the measured precisions (calibration).

Inside: facts < remote < imaging < lists < decoding, calibration. Imports `resnet.models`
(recipes), `resnet.common`, `resnet.errors`; never Paddle. Settings such as
--reduced_decode come as arguments (workers get them with their pickled settings).
"""
