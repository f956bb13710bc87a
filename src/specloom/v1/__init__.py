"""Generated protocol stubs for specloom.v1 (see protos/). Do not edit; run `make gen`."""
