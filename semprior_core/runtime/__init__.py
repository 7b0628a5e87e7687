"""Where and how networks run: device and AMP choice, ``torchrun`` process groups, whole-image inference and
tiling of frames too large to predict whole."""
