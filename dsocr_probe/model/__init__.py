"""The model side: loading, the weightless skeleton, LoRA, gradients, the training step and its memory."""
