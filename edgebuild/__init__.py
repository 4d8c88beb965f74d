"""edgebuild: declarative, cached builds of one trained model for many edge devices."""

__version__ = "0.1.0"
