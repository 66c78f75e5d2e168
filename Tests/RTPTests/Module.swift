// Tests of the RTP module. Each concern has its own file beside this one.
