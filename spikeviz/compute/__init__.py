"""Pure numeric functions on numpy arrays (numba kernels behind public wrappers).

Nothing here imports Panel, Bokeh, HoloViews or Param.
"""
