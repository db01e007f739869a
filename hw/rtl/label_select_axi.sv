// Top-1 label selection (argmax) over LABELS = FOLDS*PE inputs streamed PE per beat.
// Ties: the LOWEST index wins (numpy/torch argmax first occurrence): within a beat
// a later lane replaces the best only if strictly greater, and a later beat replaces
// the running best only if strictly greater. One output beat (the index) per vector.
// Written for the project (hw/custom_ops/label_select.py): FINN 1.6.1 has only
// LabelSelect_hls.
module label_select_axi #(
	parameter int unsigned PE = 1,
	parameter int unsigned FOLDS = 4,   // beats per vector (Labels / PE)
	parameter int unsigned IBITS = 8,   // input element width
	parameter bit  SIGNED = 1,          // input elements are signed
	parameter int unsigned OBITS = 8    // output index width
)(
	input  logic  clk,
	input  logic  rst,

	input  logic [PE*IBITS-1:0]  idat,
	input  logic  ivld,
	output logic  irdy,

	output logic [OBITS-1:0]  odat,
	output logic  ovld,
	input  logic  ordy
);
	localparam int unsigned  CW = FOLDS > 1 ? $clog2(FOLDS) : 1;
	typedef logic signed [IBITS:0]  val_t;  // (IBITS+1)-bit signed: one compare for both signednesses

	// Best lane of this beat (lowest lane among the maxima).
	val_t  bval;
	logic [OBITS-1:0]  bidx;
	always_comb begin
		bval = SIGNED ? val_t'($signed(idat[IBITS-1:0])) : val_t'({1'b0, idat[IBITS-1:0]});
		bidx = '0;
		for(int unsigned i = 1; i < PE; i++) begin
			automatic logic [IBITS-1:0]  e = idat[i*IBITS +: IBITS];
			automatic val_t  v = SIGNED ? val_t'($signed(e)) : val_t'({1'b0, e});
			if(v > bval) begin
				bval = v;
				bidx = OBITS'(i);
			end
		end
	end

	logic [CW-1:0]  Fold = '0;
	val_t  Best = '0;
	logic [OBITS-1:0]  BestIdx = '0;
	logic [OBITS-1:0]  ODat = '0;
	logic  OVld = 1'b0;

	uwire  last = Fold == CW'(FOLDS-1);
	// Only the last beat of a vector needs the output register.
	assign irdy = !last || !OVld || ordy;
	uwire  take = ivld && irdy;

	// Candidate after this beat: the running best unless this beat is strictly greater.
	uwire  newer = (Fold == 0) || (bval > Best);
	uwire val_t  cval = newer ? bval : Best;
	uwire [OBITS-1:0]  cidx = newer ? OBITS'(Fold * PE) + bidx : BestIdx;

	always_ff @(posedge clk) begin
		if(rst) begin
			Fold <= '0;
			OVld <= 1'b0;
		end
		else begin
			if(OVld && ordy)  OVld <= 1'b0;
			if(take) begin
				Best    <= cval;
				BestIdx <= cidx;
				if(last) begin
					Fold <= '0;
					ODat <= cidx;
					OVld <= 1'b1;
				end
				else  Fold <= Fold + 1;
			end
		end
	end
	assign odat = ODat;
	assign ovld = OVld;

endmodule : label_select_axi
