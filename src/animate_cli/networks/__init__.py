"""The published FOMM networks: keypoint detector, dense motion network, generator, discriminator."""
