// physworld's label pass: instance id and depth, unlit, for one mesh.
//
// Output (an Rgba16Float target, no MSAA, no tonemapping, no dithering):
//   r: the instance id (object slot + 1; 0 for statics, which still occlude and have depth);
//   g: depth along the camera's optical axis, m, rounded to f16;
//   b: (depth - g) * 1024, the part f16 rounding lost, so depth survives to ~1e-6 m;
//   a: 1 (0 where nothing was drawn).

#import bevy_pbr::forward_io::VertexOutput
#import bevy_pbr::mesh_view_bindings::view

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> instance: vec4<f32>;

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    let view_position = view.view_from_world * vec4<f32>(in.world_position.xyz, 1.0);
    let depth = -view_position.z;
    let coarse = quantizeToF16(depth);
    return vec4<f32>(instance.x, coarse, (depth - coarse) * 1024.0, 1.0);
}
