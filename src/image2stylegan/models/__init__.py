"""Pure-PyTorch networks: the StyleGAN generators and VGG-16."""
