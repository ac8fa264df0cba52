"""Models that the filters advance.

For now: the toy models used to validate the filters against the data-assimilation
literature, :class:`model.lorenz96.Lorenz96` and :class:`model.lorenz63.Lorenz63`.
"""
