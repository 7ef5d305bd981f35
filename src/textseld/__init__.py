"""textseld: stereo SELD with frozen pre-trained text encoders."""

__version__ = "0.1.0"
