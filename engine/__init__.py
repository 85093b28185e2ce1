"""Training, validation, prediction and export as library functions."""
