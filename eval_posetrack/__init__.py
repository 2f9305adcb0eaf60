"""PoseTrack 2017/2018 formats and the official mAP / MOTA evaluation."""
