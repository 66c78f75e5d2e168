// Tests of the H323 module. Each concern has its own file beside this one.
