// Header-only: see include/FuzzSupport.h.
