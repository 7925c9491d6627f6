"""TWM: Transformer-based World Models (Robine et al., ICLR 2023) in TensorFlow 2 / Keras."""
